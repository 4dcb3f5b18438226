"""Open a teacher report in headless Chromium (the distribution's package, driven by
selenium and chromedriver), and print what a person would see as JSON: console errors,
each chart's state and drawn size, SVGs that are not well-formed XML, and the samples
table's rows. With a second argument, save a full-page screenshot there.

Usage: python3 report_browser.py REPORT.html [SCREENSHOT.png]
"""
import json, os, re, shutil, sys
import xml.etree.ElementTree as ET

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

report = os.path.abspath(sys.argv[1])
shot = sys.argv[2] if len(sys.argv) > 2 else None

browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
driver_bin = shutil.which("chromedriver")
opts = webdriver.ChromeOptions()
opts.binary_location = browser
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1280,900", "--force-device-scale-factor=1"):
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
d = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
try:
    d.get("file://" + report)
    state = d.execute_script("return document.readyState")
    charts = d.execute_script("""
        const out = {};
        for (const f of document.querySelectorAll('figure.chart')) {
            const svgs = [...f.querySelectorAll('svg')];
            const boxes = svgs.map(s => s.getBoundingClientRect());
            out[f.id] = {
                state: f.dataset.state,
                svgs: svgs.length,
                shapes: svgs.reduce((n, s) => n + s.querySelectorAll('rect,path,circle,line').length, 0),
                min_width: boxes.length ? Math.min(...boxes.map(b => b.width)) : 0,
                min_height: boxes.length ? Math.min(...boxes.map(b => b.height)) : 0,
                caption: (f.querySelector('figcaption') || {}).textContent || '',
            };
        }
        return out;""")
    rows = d.execute_script("return document.querySelectorAll('#samples tbody tr').length")
    title = d.title
    errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    if shot:
        h = d.execute_script("return document.documentElement.scrollHeight")
        d.set_window_size(1280, min(int(h) + 20, 12000))
        d.save_screenshot(shot)
finally:
    d.quit()

text = open(report, encoding="utf-8").read()
bad_svg = []
for m in re.finditer(r"<svg .*?</svg>", text, re.S):
    try:
        ET.fromstring(m.group(0))
    except ET.ParseError as e:
        bad_svg.append(f"{e}: {m.group(0)[:120]}")
print(json.dumps({
    "ready_state": state, "title": title, "console_errors": errors, "charts": charts,
    "sample_rows": rows, "malformed_svg": bad_svg, "nan": "NaN" in text,
    "external_refs": re.findall(r"""(?:src|href)=["'](?:https?:)?//""", text),
    "scripts": text.count("<script"),
}))
