"""train: fine-tuning of the student with trl on the kept records.

stage.py holds the stage's options and its run; examples.py turns records into chat examples (and keeps
the test split out); sft.py fine-tunes with trl's SFTTrainer (full or LoRA, resumable checkpoints);
stepbystep.py the two-task loss of Distilling step-by-step. Other trainers (preference, on-policy
distillation) go beside sft.py as modules of their own.
"""
