# rules for stage: model (added when the stage lands)
