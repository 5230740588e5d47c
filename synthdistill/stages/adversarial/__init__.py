"""adversarial: the Lion loop, in rounds of imitate, discriminate and grow, then answer, filter and retrain.

stage.py holds the stage's options and its rounds; imitate.py, discriminate.py and grow.py the round's
own steps. The rounds run through the run layer's step runner (synthdistill/runs/steps.py), each round
in its own folder with its own manifest.
"""
