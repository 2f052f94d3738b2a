// The opt-in single header single_include/xrnn/mpi.hpp (beside xrnn.hpp) compiles, and trains a model on the ranks
// of mpirun with identical weights on every rank.
#include <xrnn/mpi.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv)
{
    xrnn::mpi::environment env(argc, argv);
    auto world = xrnn::mpi::world();
    xrnn::random_engine rng(1);
    xrnn::sequential<xrnn::gru<float, 1, 4>, xrnn::dense<float, 4, 1>> model(rng);
    model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(0.01f));
    model.distribute(world);
    xt::xtensor<float, 3> x = xt::ones<float>({10, 3, 1});
    xt::xtensor<float, 2> y = xt::ones<float>({10, 1});
    xrnn::fit_options f;
    f.epochs = 2;
    f.batch_size = 4;
    f.verbosity = xrnn::progress::silent;
    model.fit(x, y, f);
    std::vector<float> w, root;
    model.for_each_parameter([&](const auto&, auto& v, auto&) { w.insert(w.end(), v.begin(), v.end()); });
    root = w;
    world->broadcast(root.data(), root.size() * sizeof(float));
    int same = w == root ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, world->comm());
    if (world->rank() == 0)
    {
        std::printf("single-header mpi: %zu ranks, weights %s\n", world->size(), same ? "identical" : "DIFFER");
    }
    return same ? 0 : 1;
}
