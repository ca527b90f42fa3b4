"""Signed software updates of the unit: TUF channel, A/B release directories, health gate, guard.

Kept free of heavy imports: `guard` runs before every start of the unit service.
"""
