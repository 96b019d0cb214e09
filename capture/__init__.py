"""Sources published as Lab Streaming Layer streams: camera, Myo armbands, other LSL EMG, synthetic, replay."""
