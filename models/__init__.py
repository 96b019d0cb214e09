"""Networks and the preprocessing they need: the sEMG pipeline, I3D, the sEMG CNN and the fusion heads."""
