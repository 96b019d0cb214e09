"""The constants every layer of myosight shares, defined once.

The armbands (8 sEMG channels each, one or two of them: `myosight.arms`) and the clip geometry defaults
(the paper's 5 clips of a 5-s sample; I3D's 16 frames at 25 fps, short side 256, centre crop 224) are
decided here; everything else reads them from here or from a `ClipGeometry` that was built from them.
"""

from __future__ import annotations

import os

#: The armbands, in channel order: with both, channels 0-7 are the left arm's, 8-15 the right arm's.
ARMS: tuple[str, str] = ("left", "right")
#: sEMG channels of one Myo armband.
CHANNELS_PER_ARM = 8
#: sEMG channels of both arms together.
EMG_CHANNELS = len(ARMS) * CHANNELS_PER_ARM
#: The Myo's nominal EMG rate (real sessions measure about 160 Hz; the pipeline resamples by timestamps).
MYO_NOMINAL_RATE_HZ = 200.0

#: Clips per sample and the sample's length: the paper's 5 clips of a 5-s sub-action (1-s clips).
CLIPS_PER_SAMPLE = 5
SAMPLE_SECONDS = 5.0
#: I3D's input as its weights were trained: 16-frame clips at 25 fps, frames whose shorter side was
#: resized to 256 and centre-cropped to 224 x 224.
FRAMES_PER_CLIP = 16
I3D_FPS = 25.0
I3D_SHORT_SIDE = 256
I3D_CROP = 224

#: The environment variables that move the addresses a worker publishes on and a replay takes control requests
#: on, where no option names them: two people's myosight on one shared machine, a test suite beside a demo.
ADDRESS_ENV = "MYOSIGHT_ADDRESS"
CONTROL_ADDRESS_ENV = "MYOSIGHT_CONTROL_ADDRESS"
#: The worker's result address and the replay's control address when neither an option nor the environment
#: says otherwise (loopback only: see docs/reliability-and-security.md).
DEFAULT_ADDRESS = os.environ.get(ADDRESS_ENV) or "tcp://127.0.0.1:5557"
DEFAULT_CONTROL_ADDRESS = os.environ.get(CONTROL_ADDRESS_ENV) or "tcp://127.0.0.1:5558"
