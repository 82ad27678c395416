"""Typed recipes: one dataclass per trained component, a docstring per field.

A recipe is resolved once per fit by a pure function of the table (its schema and size)
and the user's choices, validated once, saved with the model as JSON and loaded back
exactly. ``Predictor(recipe={"network.width": 96})`` or ``--set network.width=96`` on the
command line overrides any field; an unknown key is an error naming it.
"""
