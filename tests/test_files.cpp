// Saving and opening files as a user's file system has them: a save keeps the file's permissions, writes through
// a symlink to its target, and removes the temporaries that crashed saves left; an unreachable file says why.
// The thread count is bounded, and a pool the system refuses threads to keeps working with those it got.
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/xrnn.hpp>

#include "support/scratch.hpp"

#if !defined(_WIN32)
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace fs = std::filesystem;

namespace
{
    using layer = xrnn::dense<float, 3, 2>;

    layer make_layer(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        return layer(rng);
    }

    std::vector<float> weights(layer& l)
    {
        std::vector<float> all;
        l.for_each_parameter([&](const auto&, auto& value, auto&) { all.insert(all.end(), value.begin(), value.end()); });
        return all;
    }

    std::vector<std::string> names_in(const fs::path& directory)
    {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(directory))
        {
            names.push_back(entry.path().filename().string());
        }
        std::sort(names.begin(), names.end());
        return names;
    }
}  // namespace

#if !defined(_WIN32)
TEST_CASE("files: a save keeps the permissions of the file it replaces")
{
    xrnn_test::scratch_dir dir("files_mode");
    layer a = make_layer(1);
    xrnn::save_weights(dir.file("w.xrnnw"), a);
    fs::permissions(dir.file("w.xrnnw"), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    layer b = make_layer(2);
    xrnn::save_weights(dir.file("w.xrnnw"), b);
    CHECK(fs::status(dir.file("w.xrnnw")).permissions() == (fs::perms::owner_read | fs::perms::owner_write));
    layer c = make_layer(3);
    xrnn::load_weights(dir.file("w.xrnnw"), c);
    CHECK(weights(c) == weights(b));
}

TEST_CASE("files: a save to a symlink replaces its target and leaves the link a link")
{
    xrnn_test::scratch_dir dir("files_symlink");
    fs::create_directories(fs::path(dir.file("real")));
    layer a = make_layer(1);
    xrnn::save_weights(dir.file("real/w.xrnnw"), a);
    fs::create_symlink("real/w.xrnnw", dir.file("link.xrnnw"));          // relative, as users make them
    fs::create_symlink(dir.file("link.xrnnw"), dir.file("link2.xrnnw"));  // a chain
    layer b = make_layer(2);
    xrnn::save_weights(dir.file("link2.xrnnw"), b);
    CHECK(fs::is_symlink(fs::symlink_status(dir.file("link.xrnnw"))));
    CHECK(fs::is_symlink(fs::symlink_status(dir.file("link2.xrnnw"))));
    layer c = make_layer(3);
    xrnn::load_weights(dir.file("real/w.xrnnw"), c);
    CHECK(weights(c) == weights(b));
    CHECK(names_in(dir.file("real")) == std::vector<std::string>{"w.xrnnw"});  // no temporary left
}

TEST_CASE("files: temporaries of crashed saves are removed by the next save, those of live processes are not")
{
    xrnn_test::scratch_dir dir("files_stale");
    // a process id that surely is not running: a child that has exited and been reaped
    const pid_t child = fork();
    if (child == 0)
    {
        _exit(0);
    }
    REQUIRE(child > 0);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    const std::string dead = dir.file("w.xrnnw.tmp-" + std::to_string(child) + "-0");
    const std::string alive = dir.file("w.xrnnw.tmp-" + std::to_string(getppid()) + "-3");
    const std::string other = dir.file("other.xrnnw.tmp-" + std::to_string(child) + "-0");
    for (const std::string& path : {dead, alive, other})
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        REQUIRE(f != nullptr);
        std::fputs("half a file", f);
        std::fclose(f);
    }
    layer a = make_layer(1);
    xrnn::save_weights(dir.file("w.xrnnw"), a);
    CHECK_FALSE(fs::exists(dead));
    CHECK(fs::exists(alive));  // a save of a running process: not ours to remove
    CHECK(fs::exists(other));  // another target's
}

TEST_CASE("files: a symlink loop is reported as such, not as a missing file")
{
    xrnn_test::scratch_dir dir("files_loop");
    fs::create_symlink(dir.file("b"), dir.file("a"));
    fs::create_symlink(dir.file("a"), dir.file("b"));
    layer l = make_layer(1);
    CHECK_THROWS_WITH_AS(xrnn::load_weights(dir.file("a"), l), doctest::Contains("symbolic links"), xrnn::io_error);
    CHECK_THROWS_WITH_AS(xrnn::save_weights(dir.file("a"), l), doctest::Contains("symbolic links"), xrnn::io_error);
    CHECK_THROWS_WITH_AS(xrnn::load_weights(dir.file("missing"), l), doctest::Contains("no such file"), xrnn::io_error);
}

TEST_CASE("files: a file that cannot be opened says why (permission denied)")
{
    if (geteuid() == 0)
    {
        MESSAGE("skipped: running as root, every file can be read");
        return;
    }
    xrnn_test::scratch_dir dir("files_denied");
    layer a = make_layer(1);
    xrnn::save_weights(dir.file("w.xrnnw"), a);
    fs::permissions(dir.file("w.xrnnw"), fs::perms::none, fs::perm_options::replace);
    CHECK_THROWS_WITH_AS(xrnn::load_weights(dir.file("w.xrnnw"), a), doctest::Contains("Permission denied"),
                         xrnn::io_error);
}
#endif

TEST_CASE("threads: set_num_threads refuses more than 4096 threads and keeps its setting")
{
    xrnn::set_num_threads(3);
    CHECK_THROWS_WITH_AS(xrnn::set_num_threads(100000),
                         "set_num_threads: 100000 threads asked, at most 4096 (0 restores the default)",
                         xrnn::value_error);
    CHECK(xrnn::num_threads() == 3);
    xrnn::set_num_threads(0);
}

#if !defined(_WIN32) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("threads: a pool the system refuses threads to runs its passes on the threads it got")
{
    // In a child process whose address space is capped just above what it uses, so that a new thread's stack
    // cannot be mapped: 64 threads are asked, far fewer start, and every pass still runs every part.
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0)
    {
        std::size_t used = 0;
        if (FILE* f = std::fopen("/proc/self/statm", "r"))
        {
            unsigned long pages = 0;
            if (std::fscanf(f, "%lu", &pages) == 1)
            {
                used = pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
            }
            std::fclose(f);
        }
        const rlimit cap{used + (64u << 20), used + (64u << 20)};  // room for a few 8 MiB stacks, not 63
        if (used == 0 || setrlimit(RLIMIT_AS, &cap) != 0)
        {
            _exit(3);
        }
        try
        {
            xrnn::set_num_threads(64);
            std::vector<int> runs(1000, 0);
            xrnn::detail::parallel_for(runs.size(), [&](std::size_t p) { runs[p] += 1; });
            for (int r : runs)
            {
                if (r != 1)
                {
                    _exit(1);
                }
            }
            _exit(xrnn::num_threads() < 64 ? 0 : 2);
        }
        catch (...)
        {
            _exit(4);
        }
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 1: a part ran other than once, 2: all 64 started, 3: no cap, 4: threw
}
#endif
