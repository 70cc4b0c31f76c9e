"""The names of what a training run directory (``rlds-hub train --out``) holds, in a module
that imports nothing, so the run, the policy loader and the algorithms' builders share them."""

RUN_JSON = "run.json"  # algorithm, config, task, normaliser, seeds
EVALUATION = "evaluation"  # the evaluation episodes, recorded
EXPERIENCE = "experience"  # the online algorithms' own environment episodes, recorded
