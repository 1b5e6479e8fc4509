"""`make demo`: placeholder until the engine lands; prints the backbone table."""

import backbones

if __name__ == "__main__":
    for name in backbones.names():
        print(name)
