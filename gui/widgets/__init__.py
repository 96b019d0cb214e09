"""The viewer's panels: each a small widget that draws one part of the latest state."""
