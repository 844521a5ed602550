"""Attachments: what a file may be, how it is checked and cleaned, and where it is kept.

    policy    pure: sizes, types told by content, names, ranges, and every reason for a refusal
    inspect   the content checks that need parsers (Pillow, pypdf, olefile, zipfile); cleaning
    scan      ClamAV's clamd over INSTREAM; fails closed
    receive   an HTTP body (raw or multipart) streamed to a temporary file, with its limits
    storage   a folder addressed by sha256, or S3-compatible object storage
    service   the upload pipeline: receive -> inspect -> scan -> store -> row
    cleanup   uploads that no message used, deleted (rows and files) after a day

Importing this package imports nothing else, so that `policy` stays pure.
"""
