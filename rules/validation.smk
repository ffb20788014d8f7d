# rules for stage: validation (added when the stage lands)
