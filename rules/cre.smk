# rules for stage: cre (added when the stage lands)
