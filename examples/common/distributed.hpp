// The examples on several processes: started by mpirun (mpirun -np 4 imdb_sentiment ...), an example built with
// MPI (CMake found one: XRNN_EXAMPLES_MPI, linked with xrnn::mpi) trains data-parallel on the ranks of mpirun;
// nothing else changes on its command line. Started alone, or built without MPI, it runs as one process.
//
//   examples::ranks ranks(argc, argv);     // first thing in main(); MPI_Finalize when it goes out of scope
//   ranks.distribute(model);               // fit, evaluate and predict on every rank
//   if (ranks.root()) write_files();       // files are written by rank 0; the other ranks' stdout is silenced
#ifndef XRNN_EXAMPLES_COMMON_DISTRIBUTED_HPP
#define XRNN_EXAMPLES_COMMON_DISTRIBUTED_HPP

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include <xrnn/xrnn.hpp>

#if defined(XRNN_EXAMPLES_MPI) && XRNN_EXAMPLES_MPI
#include <xrnn/mpi.hpp>
#endif

namespace examples
{
    class ranks
    {
    public:
        ranks(int& argc, char**& argv)
        {
#if defined(XRNN_EXAMPLES_MPI) && XRNN_EXAMPLES_MPI
            // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's and PMIx launchers PMI_SIZE or PMIX_RANK.
            if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK"))
            {
                m_environment.emplace(argc, argv);
                m_world = xrnn::mpi::world();
                m_group = m_world;
                if (m_world->rank() > 0)
                {
                    std::fflush(stdout);
                    if (std::freopen("/dev/null", "w", stdout) == nullptr)
                    {
                        std::fprintf(stderr, "rank %zu: cannot silence stdout\n", m_world->rank());
                    }
                }
            }
#else
            (void)argc;
            (void)argv;
#endif
        }

        ranks(const ranks&) = delete;
        ranks& operator=(const ranks&) = delete;

        ~ranks()
        {
            m_group.reset();
#if defined(XRNN_EXAMPLES_MPI) && XRNN_EXAMPLES_MPI
            m_world.reset();
#endif
        }

        /// Whether this process prints and writes files (rank 0, or the only process).
        bool root() const noexcept
        {
            return !m_group || m_group->rank() == 0;
        }

        std::size_t size() const noexcept
        {
            return m_group ? m_group->size() : 1;
        }

        /// Makes fit, evaluate and predict of `model` run on the ranks (nothing in one process).
        template <class Model>
        void distribute(Model& model)
        {
            if (m_group && m_group->size() > 1)
            {
                model.distribute(m_group);
            }
        }

        /// Waits until every rank is here (after rank 0 wrote a file the others read, say).
        void barrier()
        {
            if (m_group)
            {
                double nothing = 0.0;
                m_group->sum(&nothing, 1);
            }
        }

        /// Runs f on rank 0 first and on the other ranks after it (f writes a cache the others can then read).
        template <class F>
        void root_first(F&& f)
        {
            if (root())
            {
                f();
            }
            barrier();
            if (!root())
            {
                f();
            }
        }

        /// Reports an error that ends the program: on several ranks, through MPI_Abort, so that no rank is left
        /// waiting for the others (a rank that returned from main would wait in MPI_Finalize). Returns the exit
        /// status otherwise.
        int fail(const std::string& message)
        {
#if defined(XRNN_EXAMPLES_MPI) && XRNN_EXAMPLES_MPI
            if (m_world && m_world->size() > 1)
            {
                m_world->abort(message);
            }
#endif
            std::fprintf(stderr, "%s\n", message.c_str());
            return 1;
        }

    private:
#if defined(XRNN_EXAMPLES_MPI) && XRNN_EXAMPLES_MPI
        std::optional<xrnn::mpi::environment> m_environment;
        std::shared_ptr<xrnn::mpi::communicator> m_world;
#endif
        std::shared_ptr<xrnn::process_group> m_group;
    };
}  // namespace examples

#endif
