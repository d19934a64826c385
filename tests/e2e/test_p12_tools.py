"""Point 12: upstream's tool set works inside a sandbox.

Each test drives one tool through POST /v1/execute and checks what it really
made (frames of a video, text of a PDF, pixels of an image), so that a tool
missing from the sandbox, or one that cannot find its configuration, fonts or
helpers behind the sandbox's read-only root, fails here. Nothing is skipped:
scripts/deps.sh and executor/Dockerfile install all of them.
moviepy and pdf2image are not Debian packages; they come on the fly from a
package index, which this machine has not, so no test installs them.
"""
import io
import os
import time
import unittest
import zipfile

import client
from support import E2E, PNG_MAGIC

TIMEOUT = 120
PROBE_FONT_CACHES = r'''
import json, os, subprocess
d = os.environ["MPLCONFIGDIR"]
names = sorted(os.listdir(d)) if os.path.isdir(d) else []
before = [(os.stat(os.path.join(d, n)).st_uid, os.stat(os.path.join(d, n)).st_mtime_ns) for n in names]
import matplotlib.font_manager as fm
after = [(os.stat(os.path.join(d, n)).st_uid, os.stat(os.path.join(d, n)).st_mtime_ns) for n in names]
subprocess.run(["fc-list"], check=True, stdout=subprocess.DEVNULL)
print(json.dumps([names, before == after, before and before[0][0], os.path.isfile(fm.findfont("DejaVu Sans")),
                  len(os.listdir("/var/cache/fontconfig")) > 0, os.path.exists("/tmp/.cache/fontconfig")]))
'''


class P12Tools(E2E):
    def fetch(self, out, path):
        """The bytes of a file the run returned."""
        self.assertIn(path, out["files"], "%s not returned; stderr:\n%s" % (path, out["stderr"][-3000:]))
        r = client.raw("GET", "/v1/files/" + out["files"][path])
        self.assertEqual(r.status, 200, r.body[:500])
        return r.body

    def test_ffmpeg_makes_a_clip_that_ffprobe_and_cv2_read(self):
        out = self.run_code(r'''
import json, subprocess, cv2
subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                "-i", "testsrc=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p",
                "-c:v", "libx264", "clip.mp4"], check=True)
p = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                    "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                    "-of", "json", "clip.mp4"], check=True, capture_output=True, text=True)
s = json.loads(p.stdout)["streams"][0]
cap = cv2.VideoCapture("clip.mp4")
frames, shape = 0, None
while True:
    ok, frame = cap.read()
    if not ok:
        break
    frames, shape = frames + 1, list(frame.shape)
print(json.dumps([s["codec_name"], s["width"], s["height"], int(s["nb_read_frames"]), frames, shape]))
''', timeout=TIMEOUT)
        self.assertEqual(out["stdout"].strip(), '["h264", 64, 48, 10, 10, [48, 64, 3]]', out["stderr"])
        self.assertEqual(self.fetch(out, "/workspace/clip.mp4")[4:8], b"ftyp")

    def test_pandoc_converts_markdown_to_docx(self):
        out = self.run_code(r'''
import subprocess
open("in.md", "w").write("# Quarterly report\n\nRevenue grew **fast**.\n")
subprocess.run(["pandoc", "in.md", "-o", "report.docx"], check=True)
''', timeout=TIMEOUT)
        docx = zipfile.ZipFile(io.BytesIO(self.fetch(out, "/workspace/report.docx")))
        xml = docx.read("word/document.xml").decode("utf-8")
        self.assertIn("Quarterly report", xml)
        self.assertIn("Revenue grew", xml)

    def test_pandoc_makes_a_pdf_from_markdown_in_a_shell_line(self):
        # upstream's wrapper (executor/bin/pandoc): weasyprint makes the PDF,
        # there is no LaTeX; the client's tool description promises this
        got = self.run_probe(r'''
echo "# Minutes" > notes.md
echo "Decided: ship it." >> notes.md
pandoc notes.md -o notes.pdf
import fitz, json
doc = fitz.open("notes.pdf")
print(json.dumps(doc[0].get_text()))
''', timeout=TIMEOUT)
        self.assertIn("Minutes", got)
        self.assertIn("Decided: ship it.", got)

    def test_pypandoc_converts_markdown_to_html(self):
        html = self.run_probe(r'''
import json, pypandoc
print(json.dumps(pypandoc.convert_text("# Title\n\nsome *emphasis*", "html", format="md")))
''', timeout=TIMEOUT)
        self.assertIn('<h1 id="title">Title</h1>', html)
        self.assertIn("<em>emphasis</em>", html)

    def test_weasyprint_pdf_read_back_by_fitz_and_pypdf2(self):
        got = self.run_probe(r'''
import json, fitz, PyPDF2, weasyprint
weasyprint.HTML(string="<h1>Invoice 4711</h1><p style='font-family: serif'>Total: 42 EUR</p>"
                ).write_pdf("invoice.pdf")
doc = fitz.open("invoice.pdf")
reader = PyPDF2.PdfReader("invoice.pdf")
fonts = sorted({f[3] for f in doc[0].get_fonts()})
print(json.dumps([doc.page_count, doc[0].get_text(), len(reader.pages),
                  reader.pages[0].extract_text(), fonts]))
''', timeout=TIMEOUT)
        pages, fitz_text, pypdf_pages, pypdf_text, fonts = got
        self.assertEqual((pages, pypdf_pages), (1, 1))
        for text in (fitz_text, pypdf_text):
            self.assertIn("Invoice 4711", text)
            self.assertIn("Total: 42 EUR", text)
        self.assertTrue(fonts, "the PDF embeds no font")

    def test_opencv_draws_blurs_and_finds_edges(self):
        got = self.run_probe(r'''
import json, cv2, numpy as np
img = np.zeros((100, 200, 3), np.uint8)
cv2.rectangle(img, (50, 25), (149, 74), (255, 255, 255), -1)
gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
blur = cv2.GaussianBlur(gray, (5, 5), 0)
edges = cv2.Canny(gray, 50, 150)
contours, _ = cv2.findContours(gray, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
ok, png = cv2.imencode(".png", img)
back = cv2.imdecode(png, cv2.IMREAD_COLOR)
print(json.dumps([list(edges.shape), int(edges[50, 45:55].max()), int(edges[40:60, 60:140].max()),
                  int(gray[50, 100]), int(blur[50, 100]), 0 < int(blur[25, 50]) < 255,
                  len(contours), list(cv2.boundingRect(contours[0])), bool((back == img).all())]))
''', timeout=TIMEOUT)
        self.assertEqual(got, [[100, 200], 255, 0, 255, 255, True, 1, [50, 25, 100, 50], True])

    def test_pikepdf_merges_pdfs(self):
        got = self.run_probe(r'''
import json, pikepdf, fitz
for name, n in (("a.pdf", 2), ("b.pdf", 3)):
    pdf = pikepdf.new()
    for _ in range(n):
        pdf.add_blank_page(page_size=(200, 100))
    pdf.save(name)
merged = pikepdf.new()
for name in ("a.pdf", "b.pdf"):
    merged.pages.extend(pikepdf.open(name).pages)
merged.save("merged.pdf")
back = pikepdf.open("merged.pdf")
print(json.dumps([len(back.pages), [float(x) for x in back.pages[4].mediabox],
                  fitz.open("merged.pdf").page_count]))
''', timeout=TIMEOUT)
        self.assertEqual(got, [5, [0.0, 0.0, 200.0, 100.0], 5])

    def test_imagemagick_convert_draws_and_writes_text(self):
        out = self.run_code(r'''
import subprocess
print(subprocess.run(["convert", "-version"], check=True, capture_output=True, text=True).stdout.split("\n")[0])
subprocess.run(["convert", "-size", "40x30", "xc:red", "-fill", "blue",
                "-draw", "rectangle 0,0 9,9", "boxes.png"], check=True)
subprocess.run(["convert", "-size", "200x60", "xc:white", "-font", "DejaVu-Sans", "-pointsize", "32",
                "-fill", "black", "-annotate", "+10+45", "Hello", "text.png"], check=True)
''', timeout=TIMEOUT)
        self.assertIn("ImageMagick", out["stdout"])
        self.assertEqual(out["stderr"], "")
        got = self.run_probe(r'''
import json
from PIL import Image
a = Image.open("boxes.png").convert("RGB")
b = Image.open("text.png").convert("L")
dark = sum(1 for p in b.getdata() if p < 128)
print(json.dumps([a.size, a.getpixel((20, 20)), a.getpixel((5, 5)), b.size, dark]))
''', files={"/workspace/boxes.png": out["files"]["/workspace/boxes.png"],
            "/workspace/text.png": out["files"]["/workspace/text.png"]})
        size, outside, inside, text_size, dark = got
        self.assertEqual((size, outside, inside, text_size), ([40, 30], [255, 0, 0], [0, 0, 255], [200, 60]))
        self.assertGreater(dark, 200, "no text was drawn")

    def test_mutool_renders_and_extracts_a_pdf(self):
        got = self.run_probe(r'''
import json, subprocess, fitz
from PIL import Image
doc = fitz.open()
page = doc.new_page(width=200, height=100)
page.insert_text((20, 50), "mutool check")
doc.save("page.pdf")
info = subprocess.run(["mutool", "info", "page.pdf"], check=True, capture_output=True, text=True).stdout
text = subprocess.run(["mutool", "draw", "-F", "txt", "-o", "-", "page.pdf"],
                      check=True, capture_output=True, text=True).stdout
subprocess.run(["mutool", "draw", "-r", "144", "-o", "page.png", "page.pdf", "1"],
               check=True, capture_output=True)
png = Image.open("page.png")
print(json.dumps(["Pages: 1" in info, text.strip(), png.size]))
''', timeout=TIMEOUT)
        self.assertEqual(got, [True, "mutool check", [400, 200]])

    def test_yt_dlp_runs(self):
        out = self.run_code("import subprocess\n"
                            "subprocess.run(['yt-dlp', '--version'], check=True)", timeout=TIMEOUT)
        self.assertRegex(out["stdout"], r"^\d{4}\.\d{2}\.\d{2}\S*\n$")

    def test_pandas_plot_savefig_and_show(self):
        out = self.run_code(r'''
import pandas as pd
import matplotlib.pyplot as plt
df = pd.DataFrame({"x": range(10), "y": [v * v for v in range(10)]})
ax = df.plot(x="x", y="y", title="squares")
plt.savefig("chart.png")
plt.show()
print(ax.get_title(), len(ax.lines[0].get_xdata()))
''', timeout=TIMEOUT)
        self.assertEqual(out["stdout"], "squares 10\n")
        self.assertEqual(out["stderr"], "")
        for path in ("/workspace/chart.png", "/workspace/plot.png"):
            png = self.fetch(out, path)
            self.assertEqual(png[:8].hex(), PNG_MAGIC)
            self.assertGreater(len(png), 5000, path)

    @unittest.skipIf(os.environ.get("E2E_BACKEND") == "kubernetes",
                     "local backend only: the zygote's shared root carries the font list")
    def test_font_caches_come_with_the_sandbox(self):
        # matplotlib's font list (built once in the background when the
        # zygote starts: sandboxes made after that get a copy) and fontconfig's
        # system cache are used as they are, not built again
        deadline = time.monotonic() + 60
        while True:
            got = self.run_probe(PROBE_FONT_CACHES, timeout=TIMEOUT)
            if got[0] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        names, unchanged, uid, found, system_cache, user_cache = got
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], r"^fontlist-v\d+\.json$")
        self.assertEqual((unchanged, uid, found, system_cache, user_cache), (True, 1000, True, True, False))

    def test_pandas_excel_extras(self):
        got = self.run_probe(r'''
import json, pandas as pd, xlrd
df = pd.DataFrame({"name": ["a", "b"], "n": [1, 2]})
df.to_excel("o.xlsx", index=False, engine="openpyxl")
df.to_excel("x.xlsx", index=False, engine="xlsxwriter")
df.to_excel("d.ods", index=False, engine="odf")
back = [pd.read_excel(f).to_dict("list") for f in ("o.xlsx", "x.xlsx", "d.ods")]
sheet = xlrd.open_workbook("o.xlsx").sheet_by_index(0)
print(json.dumps([back, sheet.row_values(0)]))
''', timeout=TIMEOUT)
        rows = {"name": ["a", "b"], "n": [1, 2]}
        self.assertEqual(got, [[rows, rows, rows], ["name", "n"]])

    def test_tabulate_and_dataframe_to_markdown(self):
        got = self.run_probe(r'''
import json, pandas as pd
from tabulate import tabulate
t = tabulate([[1, "a"], [22, "bb"]], headers=["n", "s"], tablefmt="github")
m = pd.DataFrame({"n": [1, 22]}).to_markdown(index=False)
print(json.dumps([t, m]))
''', timeout=TIMEOUT)
        self.assertEqual(got[0], "|   n | s   |\n|-----|-----|\n|   1 | a   |\n|  22 | bb  |")
        self.assertEqual(got[1], "|   n |\n|----:|\n|   1 |\n|  22 |")

    def test_xarray_reduces_and_selects(self):
        got = self.run_probe(r'''
import json, numpy as np, pandas as pd, xarray as xr
da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("t", "x"),
                  coords={"t": [10, 20, 30], "x": list("abcd")})
ds = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index([5, 6], name="k")).to_xarray()
print(json.dumps([da.mean("t").values.tolist(), float(da.sel(t=20, x="c")),
                  da.sum().item(), ds["v"].sel(k=6).item()]))
''', timeout=TIMEOUT)
        self.assertEqual(got, [[4.0, 5.0, 6.0, 7.0], 6.0, 66.0, 2.0])

    def test_jinja2_templates_and_pandas_styler(self):
        got = self.run_probe(r'''
import json, jinja2, pandas as pd
t = jinja2.Template("{% for n in names %}{{ n | upper }}{% if not loop.last %}, {% endif %}{% endfor %}")
html = pd.DataFrame({"v": [1.5]}).style.format("{:.2f}").to_html()
print(json.dumps([t.render(names=["ada", "bob"]), "<table" in html, "1.50" in html]))
''', timeout=TIMEOUT)
        self.assertEqual(got, ["ADA, BOB", True, True])

    def test_pydantic_validates(self):
        got = self.run_probe(r'''
import json, pydantic
class Order(pydantic.BaseModel):
    item: str
    qty: int
o = Order(item="tea", qty="3")
try:
    Order(item="tea", qty="many")
    err = None
except pydantic.ValidationError as e:
    err = [list(x["loc"]) for x in e.errors()]
print(json.dumps([o.qty, type(o.qty).__name__, err]))
''', timeout=TIMEOUT)
        self.assertEqual(got, [3, "int", [["qty"]]])
