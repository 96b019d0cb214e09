"""The desktop viewer (PySide6 + pyqtgraph): traces, spectrograms, camera, predictions, health."""
