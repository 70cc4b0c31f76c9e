"""LeRobot's v3.0 dataset format (Parquet tables, MP4 videos, JSON/Parquet metadata), read and
written without LeRobot itself: :mod:`~rlds_hub.lerobot.reading` (``meta/info.json``, the
episodes and tasks tables, data files), :mod:`~rlds_hub.lerobot.video` (frames decoded as
LeRobot's reader decodes them), and the layout, writing, statistics and encoding modules of the
RLDS -> LeRobot export. The Beam source (``rlds-hub convert --source-format lerobot``) and the
export job are thin layers over these modules."""
