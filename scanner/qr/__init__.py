"""Reading QR codes from camera frames and image files.

`decode` (the stage: `QrDecoder`, `read_image`) tries zxing-cpp on the frame and on textured
regions, then `locate` (a QR code's pose from its finder patterns, found by `finders`) for
codes zxing-cpp cannot place; `imageheader` refuses image files by their header before OpenCV
reads them; `errors` holds what they raise.
"""
