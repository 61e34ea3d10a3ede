"""The gateway: owns every socket of its calls and drives their actor trees from one event loop."""
