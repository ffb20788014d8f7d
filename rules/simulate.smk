# rules for stage: simulate (added when the stage lands)
