"""myosight: live egocentric action recognition from a head camera and two sEMG armbands."""

__version__ = "0.1.0"
