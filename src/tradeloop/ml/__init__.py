"""Machine learning: features, triple-barrier labels, meta-model training, inference, registry."""
