"""Measuring synthetic slices against real ones: features, distances, diversity, memorisation, downstream Dice."""
