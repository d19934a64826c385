"""Point 2: files written by a run come back as store objects (those directly
under /workspace, as upstream; those below it too when the request asks with
include_subdirectories); objects given to a later run are placed at their
paths; stored objects never change."""
import client
from support import E2E, sha256

WRITE_TWO = r'''
import os
with open("file.txt", "w") as f:
    f.write("hello file\n")
os.makedirs("out/deep", exist_ok=True)
with open("/workspace/out/deep/a.csv", "w") as f:
    f.write("a,b\n1,2\n")
print("written")
'''


class P2Files(E2E):
    def write_two(self):
        out = self.run_code(WRITE_TWO, subdirectories=True)
        self.assertEqual(out["stdout"], "written\n")
        return out["files"]

    def test_created_files_are_returned_under_workspace(self):
        files = self.write_two()
        self.assertEqual(sorted(files), ["/workspace/file.txt", "/workspace/out/deep/a.csv"])
        for oid in files.values():
            self.assertRegex(oid, r"^[0-9a-zA-Z_-]{1,255}$")

    def test_only_top_level_files_are_listed_by_default(self):
        # upstream's rule: a client copies each listed file into its own folder
        # without creating directories, so a nested path must not be listed
        for subdirectories in (None, False):
            out = self.run_code(WRITE_TWO, subdirectories=subdirectories)
            self.assertEqual(out["files"], {"/workspace/file.txt": sha256("hello file\n")})

    def test_changed_nested_input_is_listed_only_with_subdirectories(self):
        files = self.write_two()
        src = "open('out/deep/a.csv', 'a').write('3,4\\n')"
        self.assertEqual(self.run_code(src, files=files)["files"], {})
        out = self.run_code(src, files=files, subdirectories=True)
        self.assertEqual(out["files"], {"/workspace/out/deep/a.csv": sha256("a,b\n1,2\n3,4\n")})

    def test_object_id_is_sha256_of_content(self):
        files = self.write_two()
        self.assertEqual(files["/workspace/file.txt"], sha256("hello file\n"))
        self.assertEqual(files["/workspace/out/deep/a.csv"], sha256("a,b\n1,2\n"))

    def test_later_run_reads_given_files_and_unchanged_inputs_are_not_returned(self):
        files = self.write_two()
        out = self.run_code(
            "print(open('/workspace/file.txt').read(), end='')\n"
            "print(open('out/deep/a.csv').read(), end='')\n", files=files)
        self.assertEqual(out["stdout"], "hello file\na,b\n1,2\n")
        self.assertEqual(out["files"], {})

    def test_input_can_be_placed_at_another_path(self):
        files = self.write_two()
        oid = files["/workspace/file.txt"]
        out = self.run_code("print(open('/workspace/x/y/z.txt').read(), end='')",
                            files={"/workspace/x/y/z.txt": oid})
        self.assertEqual(out["stdout"], "hello file\n")
        self.assertEqual(out["files"], {})

    def test_changed_input_comes_back_with_new_id(self):
        files = self.write_two()
        old = files["/workspace/file.txt"]
        out = self.run_code("open('file.txt', 'a').write('more\\n')", files={"/workspace/file.txt": old})
        self.assertEqual(list(out["files"]), ["/workspace/file.txt"])
        new = out["files"]["/workspace/file.txt"]
        self.assertNotEqual(new, old)
        self.assertEqual(new, sha256("hello file\nmore\n"))

    def test_new_file_next_to_unchanged_input_only_new_returned(self):
        files = self.write_two()
        out = self.run_code("open('new.txt', 'w').write('n')", files=files)
        self.assertEqual(out["files"], {"/workspace/new.txt": sha256("n")})

    def test_empty_file_is_returned(self):
        out = self.run_code("open('empty.txt', 'w').close()")
        self.assertEqual(out["files"], {"/workspace/empty.txt": sha256(b"")})

    def test_binary_content_round_trips(self):
        data = bytes(range(256)) * 1000
        out = self.run_code("open('bin.dat', 'wb').write(bytes(range(256)) * 1000)")
        oid = out["files"]["/workspace/bin.dat"]
        self.assertEqual(oid, sha256(data))
        out = self.run_code(
            "import hashlib; print(hashlib.sha256(open('bin.dat', 'rb').read()).hexdigest())",
            files={"/workspace/bin.dat": oid})
        self.assertEqual(out["stdout"], sha256(data) + "\n")

    def test_names_with_spaces_and_unicode_round_trip(self):
        out = self.run_code(
            "import os; os.makedirs('my dir', exist_ok=True)\n"
            "open('my dir/\u00fcber 100%.txt', 'w').write('u')\n", subdirectories=True)
        self.assertEqual(out["files"], {"/workspace/my dir/\u00fcber 100%.txt": sha256("u")})
        out = self.run_code("print(open('/workspace/my dir/\u00fcber 100%.txt').read())", files=out["files"])
        self.assertEqual(out["stdout"], "u\n")

    def test_many_files_are_all_returned(self):
        out = self.run_code("import os\nfor i in range(200):\n    d = 'd%d' % (i % 7)\n"
                            "    os.makedirs(d, exist_ok=True)\n    open('%s/f%d.txt' % (d, i), 'w').write(str(i))\n",
                            subdirectories=True)
        want = {"/workspace/d%d/f%d.txt" % (i % 7, i): sha256(str(i)) for i in range(200)}
        self.assertEqual(out["files"], want)

    def test_symlinks_fifos_and_sockets_are_never_returned(self):
        out = self.run_code(r'''
import os, socket
open("real.txt", "w").write("real")
os.symlink("/etc/passwd", "link_to_passwd")
os.symlink("/workspace/real.txt", "link_to_real")
os.symlink("/", "link_to_root")
os.symlink("loop_b", "loop_a"); os.symlink("loop_a", "loop_b")
os.makedirs("sub", exist_ok=True)
os.symlink("/etc", "sub/etc")
os.mkfifo("fifo")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/workspace/sock")
s.listen(1)
print("ok")
''')
        self.assertEqual(out["stdout"], "ok\n")
        self.assertEqual(out["files"], {"/workspace/real.txt": sha256("real")})

    def test_symlinked_directory_is_not_followed(self):
        out = self.run_code(r'''
import os
os.makedirs("/tmp/outside", exist_ok=True)
open("/tmp/outside/secret.txt", "w").write("s")
os.symlink("/tmp/outside", "/workspace/dirlink")
print("ok")
''')
        self.assertEqual(out["files"], {})

    def test_stored_object_never_changes_after_in_place_modification(self):
        out = self.run_code("open('data.txt', 'w').write('original content')")
        orig = out["files"]["/workspace/data.txt"]
        # run 2 modifies the input in place (same inode, same size)
        out = self.run_code(
            "f = open('data.txt', 'r+'); f.seek(0); f.write('MODIFIED'); f.close()\n"
            "print(open('data.txt').read())", files={"/workspace/data.txt": orig})
        self.assertEqual(out["stdout"], "MODIFIED content\n")
        self.assertNotEqual(out["files"].get("/workspace/data.txt"), orig)
        self.assertEqual(out["files"].get("/workspace/data.txt"), sha256("MODIFIED content"))
        # run 3 given the ORIGINAL id sees the original bytes
        out = self.run_code("print(open('data.txt').read())", files={"/workspace/data.txt": orig})
        self.assertEqual(out["stdout"], "original content\n")
        self.assertEqual(out["files"], {})

    def test_stored_object_survives_truncation_and_chmod_of_the_input(self):
        out = self.run_code("open('t.txt', 'w').write('keep me')")
        orig = out["files"]["/workspace/t.txt"]
        self.run_code("import os; os.truncate('t.txt', 0)", files={"/workspace/t.txt": orig})
        out = self.run_code("print(open('t.txt').read())", files={"/workspace/t.txt": orig})
        self.assertEqual(out["stdout"], "keep me\n")

    def test_deleted_input_is_not_returned(self):
        out = self.run_code("open('gone.txt', 'w').write('g')")
        oid = out["files"]["/workspace/gone.txt"]
        out = self.run_code("import os; os.remove('gone.txt')", files={"/workspace/gone.txt": oid})
        self.assertEqual(out["files"], {})

    def test_input_path_traversal_is_refused(self):
        out = self.run_code("open('p.txt', 'w').write('p')")
        oid = out["files"]["/workspace/p.txt"]
        for path in ["/workspace/../etc/passwd", "/workspace/a/../../etc/x", "/workspace/./p.txt",
                     "/tmp/p.txt", "/etc/passwd", "/workspace", "/workspace/"]:
            with self.subTest(path=path):
                r = client.execute("print(1)", files={path: oid})
                self.assertValidationError(r)
