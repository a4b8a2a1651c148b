"""The one trainer core (DESIGN §5) and its objectives."""
