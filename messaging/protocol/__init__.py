"""The wire protocol, pure: no I/O, no event loop, no framework.

codec      bytes or text <-> one map (size checked before decoding; owns the msgpack options)
frames     map -> typed client frame (validated against PROTOCOL.md section 3), and the
           builders of server frames (section 4)
ratelimit  token bucket and flood guard, with the clock passed in
"""
