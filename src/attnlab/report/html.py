"""`report.html`: one self-contained page from a `report.md` — images embedded as data
URIs, inline style and script only (nothing from a CDN), tables sortable by a click on a
header, and an attention explorer (choose run, example, layer and head; hover a cell for
the weight and its query and key tokens).

The Markdown is the subset the reports write: `#` headings, paragraphs, `-` lists, pipe
tables, images on a line of their own, `code`, **bold** and links.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from attnlab.run_dir import RunDir, atomic_write_text

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def _inline(text: str) -> str:
    """Escape, then `code`, **bold** and [links](url)."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
        out.append(s)
    return "".join(out)


def _image(alt: str, src: str, base: Path) -> str:
    path = base / src
    if not path.is_file():
        return f'<p class="missing">(figure {html.escape(src)} is missing)</p>'
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    head = "".join(f"<th>{_inline(c)}</th>" for c in cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells(line)) + "</tr>"
        for line in lines[2:]
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def markdown_to_html(text: str, base: Path) -> str:
    """The HTML body of the report Markdown `text`; images are read from under `base`."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
            continue
        m = re.match(r"^(#{1,6}) (.*)$", line)
        if m:
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
            continue
        m = _IMAGE.match(line.strip())
        if m:
            out.append(_image(m.group(1), m.group(2), base))
            i += 1
            continue
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|-"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
            continue
        if re.match(r"^\s*[-*] ", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*] ", lines[i]):
                item = re.sub(r"^\s*[-*] ", "", lines[i])
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                    item += " " + lines[i].strip()
                    i += 1
                items.append(f"<li>{_inline(item)}</li>")
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        para = [line]
        i += 1
        while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
            para.append(lines[i].rstrip())
            i += 1
        out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _starts_block(line: str) -> bool:
    s = line.strip()
    return bool(s.startswith(("#", "|")) or _IMAGE.match(s) or re.match(r"^[-*] ", s))


STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#1d1d1f;background:#fff}
h1{font-size:1.7em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h2{font-size:1.35em;margin-top:1.8em;border-bottom:1px solid #eee}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;font-size:.92em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em;display:block;overflow-x:auto}
th,td{border:1px solid #d8d8d8;padding:.3em .6em;text-align:left;white-space:nowrap}
th{background:#f5f5f7;cursor:pointer;user-select:none}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1.2em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.85em}
#explorer{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1.5em 0}
#explorer label{margin-right:1em}
#explorer-grid{border-collapse:collapse;display:table;margin-top:.8em;font-size:11px}
#explorer-grid td{width:15px;height:15px;padding:0;border:1px solid #fff}
#explorer-grid th{background:none;cursor:default;font-weight:normal;padding:0 3px;
border:none;font-family:monospace}
#explorer-grid thead th{writing-mode:vertical-rl;transform:rotate(180deg);height:auto}
#explorer-info{font-family:monospace;min-height:1.5em;margin-top:.5em;color:#333}
.missing{color:#a00}
"""

SORT_SCRIPT = """
function cellValue(td){const t=td.textContent.trim().replace(/,/g,'');
const m=t.match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);return m?parseFloat(m[0]):null;}
document.querySelectorAll('table.sortable').forEach(function(table){
 table.querySelectorAll('thead th').forEach(function(th,col){
  th.addEventListener('click',function(){
   const asc=!th.classList.contains('asc');
   table.querySelectorAll('thead th').forEach(h=>h.classList.remove('asc','desc'));
   th.classList.add(asc?'asc':'desc');
   const body=table.tBodies[0];const rows=Array.from(body.rows);
   rows.sort(function(a,b){const x=cellValue(a.cells[col]),y=cellValue(b.cells[col]);
    let r;if(x!==null&&y!==null)r=x-y;else if(x!==null)r=-1;else if(y!==null)r=1;
    else r=a.cells[col].textContent.localeCompare(b.cells[col].textContent);
    return asc?r:-r;});
   rows.forEach(r=>body.appendChild(r));});});});
"""

EXPLORER_SCRIPT = """
(function(){
const data=JSON.parse(document.getElementById('explorer-data').textContent);
const $=id=>document.getElementById(id);
const runSel=$('explorer-run'),exSel=$('explorer-example'),laySel=$('explorer-layer'),
 headSel=$('explorer-head'),grid=$('explorer-grid'),info=$('explorer-info');
function fill(sel,items){sel.innerHTML='';items.forEach(function(t,i){
 const o=document.createElement('option');o.value=i;o.textContent=t;sel.appendChild(o);});}
function decode(b64){const s=atob(b64);const a=new Uint8Array(s.length);
 for(let i=0;i<s.length;i++)a[i]=s.charCodeAt(i);return a;}
function run(){return data.runs[+runSel.value];}
function ex(){return run().examples[+exSel.value];}
function layer(){return ex().layers[+laySel.value];}
function onRun(){fill(exSel,run().examples.map(e=>e.example));onExample();}
function onExample(){fill(laySel,ex().layers.map(l=>l.name));onLayer();}
function onLayer(){const h=layer().heads;const names=[];for(let i=0;i<h;i++)names.push('head '+i);
 names.push('mean of heads');fill(headSel,names);draw();}
function draw(){const e=ex(),l=layer(),Q=e.queries.length,K=e.keys.length,H=l.heads;
 const raw=decode(l.data);const h=+headSel.value;
 function w(q,k){if(h<H)return raw[(h*Q+q)*K+k]/255;let s=0;
  for(let i=0;i<H;i++)s+=raw[(i*Q+q)*K+k];return s/255/H;}
 let html='<thead><tr><th></th>';
 e.keys.forEach(k=>{html+='<th>'+esc(k)+'</th>';});html+='</tr></thead><tbody>';
 for(let q=0;q<Q;q++){html+='<tr><th>'+esc(e.queries[q])+'</th>';
  for(let k=0;k<K;k++){const v=w(q,k);const c=Math.round(255*(1-v));
   html+='<td data-q="'+q+'" data-k="'+k+'" data-w="'+v.toFixed(3)+
   '" style="background:rgb('+c+','+c+',255)"></td>';}
  html+='</tr>';}
 grid.innerHTML=html+'</tbody>';info.textContent='hover a cell';}
function esc(s){return s.replace(/[&<>"]/g,
 c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
grid.addEventListener('mouseover',function(ev){const td=ev.target.closest('td');if(!td)return;
 const e=ex(),q=+td.dataset.q,k=+td.dataset.k;
 info.textContent='weight '+td.dataset.w+': query '+q+' "'+e.queries[q]+'" \\u2192 key '+k+
 ' "'+e.keys[k]+'" ('+laySel.options[laySel.selectedIndex].text+', '+
 headSel.options[headSel.selectedIndex].text+')';});
runSel.addEventListener('change',onRun);exSel.addEventListener('change',onExample);
laySel.addEventListener('change',onLayer);headSel.addEventListener('change',draw);
fill(runSel,data.runs.map(r=>r.run));
if(data.runs.length<2)runSel.parentElement.style.display='none';
onRun();})();
"""


def explorer_html(runs: list[dict]) -> str:
    """The explorer section for `runs`: [{"run": name, "examples": attention.json's}]."""
    runs = [r for r in runs if r.get("examples")]
    if not runs:
        return ""
    payload = json.dumps({"runs": runs}).replace("</", "<\\/")
    return (
        '<h2>Attention explorer</h2><div id="explorer">'
        "<p>Rows are queries, columns keys; darker is more weight. Choose a run, an example, "
        "a layer and a head; hover a cell for its weight and tokens.</p>"
        '<label>run <select id="explorer-run"></select></label>'
        '<label>example <select id="explorer-example"></select></label>'
        '<label>layer <select id="explorer-layer"></select></label>'
        '<label>head <select id="explorer-head"></select></label>'
        '<div id="explorer-info"></div><table id="explorer-grid"></table></div>'
        f'<script type="application/json" id="explorer-data">{payload}</script>'
        f"<script>{EXPLORER_SCRIPT}</script>"
    )


def load_explorer_run(run_dir: Path, name: str) -> dict | None:
    """A run's `attention.json` as an explorer entry, or None when it has none."""
    data = RunDir(run_dir).read_attention()
    return None if data is None else {"run": name, **data}


def write_html(md_path: Path, runs: list[dict] | None = None) -> Path:
    """Write `report.html` beside `md_path` from it (and an explorer over `runs`)."""
    md_path = Path(md_path)
    text = md_path.read_text(encoding="utf-8")
    m = re.search(r"^# (.*)$", text, flags=re.M)
    title = html.escape(m.group(1) if m else "attnlab report")
    body = markdown_to_html(text, md_path.parent)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>{body}{explorer_html(runs or [])}"
        f'<p style="color:#888;font-size:.8em">Written by attnlab from {md_path.name}; '
        "self-contained (no network).</p>"
        f"<script>{SORT_SCRIPT}</script></body></html>\n"
    )
    return atomic_write_text(md_path.with_suffix(".html"), page)
