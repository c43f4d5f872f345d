//! PyTorch checkpoints (.bin/.pt zip and legacy) read by a restricted pickle machine that executes nothing, and written for torch.load(weights_only=True)
