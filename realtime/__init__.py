"""The live worker: LSL inlets into ring buffers, sliding 5-clip windows, features and fusion, ZeroMQ out."""
