"""The project's measurements: `myosight bench` (speed of every part, one table), `myosight soak` (hours of use
compressed into minutes). Each module measures one part: emg, i3d, realtime, lsl, gui, train; soak."""
