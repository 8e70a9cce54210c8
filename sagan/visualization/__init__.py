"""Pictures of what the networks do: attention maps recorded from any network's attention layers
(`capture.py`), turned into heat-map panels (`panels.py`, drawn with `render.py`)."""
