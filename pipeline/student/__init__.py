"""Student stage: offline training from cached teacher outputs (BiLSTM and small BERT students)."""
