"""Files other tools read: safetensors (numpy only) and PEFT's prompt-learning adapters."""
