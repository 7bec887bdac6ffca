"""Local training with Hugging Face TRL + peft (providers-next.md §4)."""
