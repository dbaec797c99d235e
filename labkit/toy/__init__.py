"""The embedded toy model family: its synthetic world, tokenizer, training, evaluation and shipped weights."""
