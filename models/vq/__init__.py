"""Stage 1: the residual VQ-VAE motion tokenizer."""
