# rules for stage: preprocess (added when the stage lands)
