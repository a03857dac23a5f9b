"""The model: the network families, the model contract (model.json) and the model folder."""
