# rules for stage: report (added when the stage lands)
