#!/usr/bin/python3
"""Makes torrents with libtorrent's create_torrent (python3-libtorrent) and prints their info hashes.

    lt_create.py OUT_DIR SPEC...      SPEC = SOURCE:MODE:PIECE_LENGTH, MODE = v1 | v2 | hybrid

For each SPEC writes OUT_DIR/<n>.torrent (n = its position) and prints one JSON object:
{"<spec>": {"v1": hex or null, "v2": hex or null, "torrent": path}, ...}
"""
import json
import os
import sys

import libtorrent as lt

FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}

out_dir = sys.argv[1]
result = {}
for n, spec in enumerate(sys.argv[2:]):
    source, mode, piece_length = spec.rsplit(":", 2)
    fs = lt.file_storage()
    lt.add_files(fs, source)
    ct = lt.create_torrent(fs, int(piece_length), FLAGS[mode])
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(source)))
    data = lt.bencode(ct.generate())
    path = os.path.join(out_dir, f"{n}.torrent")
    with open(path, "wb") as f:
        f.write(data)
    hashes = lt.torrent_info(data).info_hashes()
    result[spec] = {
        "v1": str(hashes.v1) if hashes.has_v1() else None,
        "v2": str(hashes.v2) if hashes.has_v2() else None,
        "torrent": path,
    }
print(json.dumps(result))
