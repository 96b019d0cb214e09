"""What a user launches: `myosight run`, `demo` and `view` (a source and the worker as child processes, and a
viewer: the desktop window or the terminal table)."""
