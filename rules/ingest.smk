# rules for stage: ingest (added when the stage lands)
