"""The data layer: ActionSense session files (read and write), sub-action cutting and splits, synthetic sessions."""
