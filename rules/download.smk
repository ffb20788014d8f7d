# rules for stage: download (added when the stage lands)
