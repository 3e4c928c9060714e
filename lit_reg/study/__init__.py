"""lit-reg study: compare regularizers over seeds (Optuna)."""
