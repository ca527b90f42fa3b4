"""Cameras and the capture thread: replay, video, OpenCV, picamera2 through its fake, frame dropping."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from testbed.fuzz.hugeimages import png_bomb
from scanner.camera import CameraUnavailable, SourceEnded
from scanner.camera.backends import open_camera
from scanner.camera.fake_picamera2 import FakePicamera2
from scanner.camera.opencv import OpenCvCamera
from scanner.camera.picamera2 import Picamera2Camera
from scanner.camera.replay import ImageFolderCamera, ScriptedCamera, VideoFileCamera, read_payloads
from scanner.capture import Capture, to_gray
from scanner.config import CameraSection

W, H = 320, 240


def frames_with_marks(n: int) -> list[np.ndarray]:
    """BGR frames whose top-left block brightness encodes the frame index."""
    out = []
    for i in range(n):
        img = np.full((H, W, 3), 30, np.uint8)
        img[:40, :40] = 20 * (i + 1)
        cv2.putText(img, str(i), (100, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        out.append(img)
    return out


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(frames_with_marks(5)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    assert writer.isOpened()
    for img in frames_with_marks(6):
        writer.write(img)
    writer.release()
    return path


def mark(gray: np.ndarray) -> int:
    """The frame index written by frames_with_marks (through JPEG/gray rounding)."""
    return round(float(gray[5:35, 5:35].mean()) / 20) - 1


def read_all(camera, limit: int = 100) -> list[np.ndarray]:
    camera.start()
    frames = []
    try:
        for _ in range(limit):
            frames.append(camera.read().copy())
    except SourceEnded:
        pass
    finally:
        camera.stop()
    return frames


def test_to_gray_writes_into_the_given_buffer() -> None:
    bgr = frames_with_marks(1)[0]
    dst = np.empty((H, W), np.uint8)
    to_gray(bgr, dst)
    assert np.array_equal(dst, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    to_gray(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), dst)
    assert np.array_equal(dst, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    to_gray(gray, dst)
    assert np.array_equal(dst, gray)


def test_image_folder_plays_in_order_and_ends(image_folder: Path) -> None:
    frames = read_all(ImageFolderCamera(image_folder, fps=0, loop=False))
    assert [mark(f) for f in frames] == [0, 1, 2, 3, 4]


def test_image_folder_skips_an_image_whose_header_declares_a_huge_size(image_folder: Path) -> None:
    """A 30000x30000 PNG among the frames is refused from its header, never handed to OpenCV."""
    (image_folder / "002b.png").write_bytes(png_bomb(30000))
    frames = read_all(ImageFolderCamera(image_folder, fps=0, loop=False))
    assert [mark(f) for f in frames] == [0, 1, 2, 3, 4]


def test_image_folder_loops(image_folder: Path) -> None:
    camera = ImageFolderCamera(image_folder, fps=0, loop=True)
    frames = read_all(camera, limit=12)
    assert [mark(f) for f in frames] == [0, 1, 2, 3, 4] * 2 + [0, 1]


class _FakeClock:
    """The replay pacer's clock and stop event in one: waiting moves the clock, nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_replay_pacer_releases_one_frame_per_interval_and_never_bursts() -> None:
    from scanner.camera import replay

    clock = _FakeClock()
    pacer = replay.Pacer(20, clock, clock.monotonic)  # type: ignore[arg-type]
    for _ in range(10):
        pacer.wait()
    # The first frame at once, then one every 1/20 s: 10 frames span 9 intervals.
    assert clock.waits == pytest.approx([0.05] * 9) and clock.now == pytest.approx(1000.45)
    clock.now += 3.0  # a stall (a slow decode): no burst of frames to catch up afterwards
    pacer.wait()
    pacer.wait()
    assert clock.waits[9:] == pytest.approx([0.05])
    assert replay.Pacer(0, clock).interval == 0.0  # fps 0: as fast as frames can be read


def test_replay_camera_reads_paced_frames_in_order(image_folder: Path) -> None:
    camera = ImageFolderCamera(image_folder, fps=20, loop=True)
    camera.start()
    try:
        frames = [camera.read() for _ in range(7)]
    finally:
        camera.stop()
    assert [mark(f) for f in frames] == [0, 1, 2, 3, 4, 0, 1]


def test_video_file_replay(video_file: Path) -> None:
    frames = read_all(VideoFileCamera(video_file, fps=0, loop=False))
    assert [mark(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in frames] == [0, 1, 2, 3, 4, 5]
    looped = read_all(VideoFileCamera(video_file, fps=0, loop=True), limit=8)
    assert len(looped) == 8 and mark(cv2.cvtColor(looped[6], cv2.COLOR_BGR2GRAY)) == 0


def test_missing_sources_give_clear_reasons(tmp_path: Path) -> None:
    with pytest.raises(CameraUnavailable, match="replay folder not found"):
        ImageFolderCamera(tmp_path / "nope").start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraUnavailable, match="no images"):
        ImageFolderCamera(tmp_path / "empty").start()
    with pytest.raises(CameraUnavailable, match="cannot open"):
        OpenCvCamera(str(tmp_path / "nope.avi")).start()
    (tmp_path / "people.txt").write_text("\n\n")
    with pytest.raises(CameraUnavailable, match="no payloads"):
        read_payloads(tmp_path / "people.txt")


def test_opencv_backend_reads_a_video_and_reconnects_at_its_end(video_file: Path) -> None:
    camera = OpenCvCamera(str(video_file), reconnect_seconds=0.01)
    frames = read_all(camera, limit=9)
    assert len(frames) == 9 and frames[0].shape == (H, W, 3)
    assert camera.reconnects == 1  # the file ended once and was reopened
    assert mark(cv2.cvtColor(frames[6], cv2.COLOR_BGR2GRAY)) == 0


def test_opencv_camera_never_logs_stream_passwords() -> None:
    camera = OpenCvCamera("rtsp://admin:secret@10.0.0.5:554/stream1")
    assert camera._label == "rtsp://10.0.0.5:554"


def test_picamera2_backend_runs_through_the_fake(image_folder: Path) -> None:
    fakes: list[FakePicamera2] = []

    def factory() -> FakePicamera2:
        fakes.append(FakePicamera2(ImageFolderCamera(image_folder, fps=0, loop=True)))
        return fakes[-1]

    camera = Picamera2Camera(W, H, fps=30, factory=factory)
    camera.start()
    fake = fakes[0]
    assert fake.started and fake.controls == {"FrameRate": 30.0, "AfMode": 2}
    assert fake._config["main"] == {"size": (W, H), "format": "YUV420"}
    frames = [camera.read().copy() for _ in range(6)]
    camera.stop()
    assert fake.closed and not fake.started
    assert all(f.shape == (H, W) for f in frames)  # the Y plane only: already gray
    assert [mark(f) for f in frames] == [0, 1, 2, 3, 4, 0]


def test_picamera2_backend_reports_a_refused_configuration(image_folder: Path) -> None:
    camera = Picamera2Camera(8000, 6000, factory=lambda: FakePicamera2(ImageFolderCamera(image_folder)))
    with pytest.raises(CameraUnavailable, match="refused 8000x6000 YUV420"):
        camera.start()


def test_picamera2_backend_without_the_library_says_what_to_install() -> None:
    with pytest.raises(CameraUnavailable, match="python3-picamera2"):
        Picamera2Camera().start()


def test_capture_keeps_only_the_latest_frame(image_folder: Path) -> None:
    capture = Capture(ImageFolderCamera(image_folder, fps=200, loop=True))
    capture.start()
    try:
        first = capture.take(timeout=5)
        assert first is not None
        buffers = {id(first.gray)}
        deadline = time.monotonic() + 10
        while capture.frames < first.seq + 30 and time.monotonic() < deadline:
            time.sleep(0.05)  # the decoder is busy while 30 frames arrive
        frame = capture.take(timeout=5)
        assert frame is not None
        assert frame.seq - first.seq >= 30  # it skipped ahead to a recent frame, not the next in a queue
        assert capture.frames - frame.seq < frame.seq - first.seq
        assert capture.dropped >= 28
        for _ in range(20):
            f = capture.take(timeout=5)
            assert f is not None
            buffers.add(id(f.gray))
        assert len(buffers) <= 3  # three buffers, reused: no allocation per frame
        deadline = time.monotonic() + 5
        while capture.fps == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the rate is measured over whole seconds
        assert 0 < capture.fps < 260  # paced at 200 fps
    finally:
        capture.stop()
    assert not capture.running


def test_capture_marks_a_finished_source_and_reports_a_broken_one(image_folder: Path, tmp_path: Path) -> None:
    capture = Capture(ImageFolderCamera(image_folder, fps=0, loop=False))
    capture.start()
    deadline = time.monotonic() + 5
    while not capture.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert capture.ended and capture.frames == 5
    capture.stop()
    broken = Capture(ImageFolderCamera(tmp_path / "missing"), retry_seconds=0.05)
    broken.start()
    deadline = time.monotonic() + 5
    while broken.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    broken.stop()
    assert broken.error is not None and "replay folder not found" in broken.error


def test_scripted_camera_holds_each_phone_then_leaves_a_gap() -> None:
    from scanner.qr.decode import QrDecoder

    payloads = ["HC1:" + "A1B2C3" * 40, "HC1:" + "Z9Y8X7" * 40]
    camera = ScriptedCamera(payloads, 1280, 720, fps=0, loop=False, hold_frames=3, gap_frames=2)
    frames = read_all(camera)
    assert len(frames) == 10 and camera.presented == 2
    decoder = QrDecoder()
    reads = [decoder.decode(f) for f in frames]
    assert reads[:3] == [payloads[0]] * 3 and reads[5:8] == [payloads[1]] * 3
    assert reads[3] is None and reads[4] is None and reads[8] is None


def test_open_camera_chooses_the_backend(image_folder: Path, video_file: Path, tmp_path: Path) -> None:
    assert isinstance(open_camera(CameraSection(backend="replay", source=str(image_folder))), ImageFolderCamera)
    assert isinstance(open_camera(CameraSection(backend="replay", source=str(video_file))), VideoFileCamera)
    assert isinstance(open_camera(CameraSection(backend="opencv", source="0")), OpenCvCamera)
    assert isinstance(open_camera(CameraSection(backend="picamera2")), Picamera2Camera)
    (tmp_path / "people.txt").write_text("HC1:ONE\nHC1:TWO\n")
    scripted = open_camera(CameraSection(backend="scripted", source=str(tmp_path / "people.txt")))
    assert isinstance(scripted, ScriptedCamera) and scripted._payloads == ["HC1:ONE", "HC1:TWO"]
