"""Video data: moving digits (generated, no download) and folders of videos or frame folders (`folder`,
read by `decode`)."""
