"""Matching (货配人): products recommended to shops and shops to suppliers, with reasons."""
