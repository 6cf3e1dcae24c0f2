"""The model: cells (lstm, layer_norm, hyper), the fused LSTM kernel, SketchRNN and its
losses, and building a ready model with its one optimizer. Imports Keras."""
