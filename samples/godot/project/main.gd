# Generates a texture with Flux Engine while the game loop keeps running, shows it in a
# TextureRect with the job's progress, then edits a capture of the viewport with Kontext.
#
# FLUX_MODEL names the model folder. With FLUX_TEST_OUT set (ffi/tests/hosts.rs), the pixels and
# a report go there and the game quits: 0 when every step worked.
extends Control

const FluxEngine = preload("res://flux_engine.gdns")
const SIZE = Vector2(64, 48)
# Frames to wait after showing the picture, so that the viewport has drawn it.
const DRAW_FRAMES = 2

onready var picture: TextureRect = $Picture
onready var progress: ProgressBar = $Progress
onready var status: Label = $Status

var flux
var job := 0
var phase := ""
var frames := 0
var busy_frames := 0  # frames run while the job was queued or running
var wait_frames := 0
var report := {}
var out_dir := OS.get_environment("FLUX_TEST_OUT")


func _ready():
	flux = FluxEngine.new()
	if flux.open(OS.get_environment("FLUX_MODEL")) != 0:
		finish("open: " + flux.last_error())
		return
	start("generate", flux.generate("a red lighthouse at dusk", SIZE.x, SIZE.y, 3, 7, 32))


func start(name, id):
	if id == 0:
		finish(name + ": " + flux.last_error())
		return
	phase = name
	job = id
	busy_frames = 0
	status.text = name + "…"


func _process(_delta):
	frames += 1
	if phase == "capture":
		wait_frames += 1
		if wait_frames > DRAW_FRAMES:
			capture_and_edit()
		return
	if job == 0:
		return
	var s = flux.status(job)  # [state, step, total]
	if s[0] <= 1:
		busy_frames += 1
		if s[2] > 0:
			progress.value = 100.0 * s[1] / s[2]
		return
	if s[0] != 2:
		finish("%s: %s" % [phase, flux.last_error()])
		return
	show_result()


func show_result():
	var size = flux.image_size(job)
	var pixels = flux.image(job)
	flux.release(job)
	job = 0
	var image = Image.new()
	image.create_from_data(int(size.x), int(size.y), false, Image.FORMAT_RGBA8, pixels)
	var texture = ImageTexture.new()
	texture.create_from_image(image, 0)
	picture.texture = texture
	progress.value = 100
	report[phase + "_busy_frames"] = busy_frames
	save(phase + ".rgba", texture.get_data().get_data())
	if phase == "generate":
		phase = "capture"
		wait_frames = 0
	else:
		finish("")


func capture_and_edit():
	var shot = get_viewport().get_texture().get_data()
	shot.flip_y()
	var region = shot.get_rect(Rect2(picture.rect_position, SIZE))
	region.convert(Image.FORMAT_RGBA8)
	save("capture.rgba", region.get_data())
	start("edit", flux.edit("make it night", region.get_data(), SIZE.x, SIZE.y, 2, 7, 32))


func save(name, bytes):
	if out_dir:
		var f = File.new()
		f.open(out_dir.plus_file(name), File.WRITE)
		f.store_buffer(bytes)
		f.close()


func finish(error):
	phase = ""
	report["error"] = error
	report["frames"] = frames
	status.text = error if error else "Done"
	if out_dir:
		save("report.json", to_json(report).to_utf8())
		get_tree().quit(0 if error == "" else 1)
