"""pairs: preference pairs (chosen over rejected) from what the pipeline already has, for the dpo stage.

stage.py holds the config and the stage; candidates.py a question's candidate answers and the pair records
made from them; student.py asks the run's student; judge.py asks the llm_judge critic in both orders.
"""
