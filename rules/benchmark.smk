# rules for stage: benchmark (added when the stage lands)
