"""``python -m examples.face_unlock COMMAND`` (see :mod:`examples.face_unlock.cli`)."""
from .cli import main

if __name__ == "__main__":
    main()
