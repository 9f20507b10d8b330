"""Media: download, probe, check and transcode audio. The only users of mutagen and ffmpeg."""
